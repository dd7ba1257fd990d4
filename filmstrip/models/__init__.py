"""Models: the video autoencoders (causal 3D VAE, 2D baseline, FSQ) and their parts."""
