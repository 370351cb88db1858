"""The torch-free, nnU-Net-free core: errors, knobs, record formats, file helpers, tables, naming."""
