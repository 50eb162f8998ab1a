"""Every saved model type loads by its recorded type in a fresh interpreter that imported only
``arforge.pretrained`` (the way ``arforge sample`` / ``arforge bench`` load checkpoints)."""

import subprocess
import sys

import torch


def test_saved_models_of_every_family_load_in_a_fresh_process(tmp_path):
    from arforge.generators import BackboneConfig, MARConfig, MARGenerator, NARConfig, NARGenerator, XARConfig, XARGenerator
    from arforge.tokenizers.video import VideoVQConfig, VideoVQTokenizer

    torch.manual_seed(0)
    tiny = BackboneConfig(dim=32, n_layer=1, n_head=2, multiple_of=16)
    models = {
        "mar": MARGenerator(MARConfig(latent_channels=2, grid_size=(2, 2), num_classes=2, buffer_size=1, encoder_embed_dim=16,
                                      encoder_depth=1, encoder_num_heads=2, decoder_embed_dim=16, decoder_depth=1,
                                      decoder_num_heads=2, diffloss_d=1, diffloss_w=16, num_sampling_steps=2)),
        "nar": NARGenerator(NARConfig(vocab_size=8, grid_size=(2, 2), num_classes=2, backbone=tiny)),
        "xar": XARGenerator(XARConfig(latent_channels=2, grid_size=(2, 2), cell_size=(1, 2), num_classes=2, backbone=tiny)),
        "video_vq": VideoVQTokenizer(VideoVQConfig(in_channels=1, ch=4, ch_mult=[1, 1], temporal_down=[True],
                                                   temporal_kernel=[1, 3], norm_groups=2, z_channels=4, codebook_size=8,
                                                   codebook_embed_dim=2)),
    }
    for name, model in models.items():
        model.save_pretrained(tmp_path / name)
    script = ("import sys\nfrom arforge.auto import load_pretrained\n"
              "for d in sys.argv[1:]:\n    print(type(load_pretrained(d)).__name__)\n")
    out = subprocess.run([sys.executable, "-c", script, *(str(tmp_path / n) for n in models)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["MARGenerator", "NARGenerator", "XARGenerator", "VideoVQTokenizer"]
