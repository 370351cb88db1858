"""Everything that touches nnU-Net (and torch): trainer hooks per method, loaders, compile, runner, discovery."""
