"""The package's offline tools on nnU-Net's data (run by ``nnprog``, never inside a training): the PDL similarity
ranking (``nnprog rank``) and the transfer tools (``nnprog transfer sources|prepare|adapt``)."""
