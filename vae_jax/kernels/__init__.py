"""Fast paths for XLA:CPU, apart from the models: the same functions as flax's layers, computed
the way XLA:CPU runs fastest (models.conv picks them with model.decoder.upsample='auto' and
model.conv_runs='auto').

  col2im      a 4x4 stride-2 transposed conv as one GEMM + overlap-add, with its own VJP
  phase       the same layer as a 3x3 conv + pixel shuffle
  runs_conv   convs that loop over a vmapped runs axis instead of becoming grouped convs
  common      the shared bias add (matrix-vector gradient) and the flipped initializer

Each is tested against the plain layer it replaces (tests/test_models.py, test_torch_parity.py).
"""
