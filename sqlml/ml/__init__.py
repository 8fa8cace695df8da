"""sqlml's ML core: preprocessing, training, ONNX graphs, scoring (no grammar, engine or wire).

OpenMP threads wait passively. scikit-learn and XGBoost ship the same libgomp (one soname, so the
process loads it once, when scikit-learn is imported) and libgomp reads OMP_WAIT_POLICY only
then; its default spins idle threads, and sqlml trains inside database servers whose cores other
work shares: a 2-thread XGBoost fit ran 7-10x slower beside a busy process (docs/design/trees.md).
Set here, before any of sqlml's ML imports loads libgomp, unless the operator set it already.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")
