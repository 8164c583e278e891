"""Configuration: composing the packaged Hydra configs into typed, checked config objects."""
