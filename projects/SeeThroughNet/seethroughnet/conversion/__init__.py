"""Published checkpoints of other code bases mapped into the project's models
(``tools/convert_weights.py``). Plain Python + torch: a converter maps state-dict *names*; the
project's model (built from its config) is the judge of the shapes."""
