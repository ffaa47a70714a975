"""Experiment machinery shared by the command lines in ``tools/`` and ``transfer/``.

* :mod:`.models` -- ``load_model(config, weights)``: register the datasets, build the config,
  build the model, load the weights (export, demo, Grad-CAM and the other visualisations, the
  CPP study, Table 5's checks and the benchmark all go through it);
* :mod:`.grid` -- one grid runner: cells, a subprocess (or a cluster job) per cell, one result
  file per cell (``result.json``), resume, ``--retry-failed``;
* :mod:`.executors` -- where a cell's command runs: locally, or one SLURM job per cell through
  submitit; :mod:`.slurm` -- one ``train_net.py`` run as a SLURM job (``tools/submit.py``);
* :mod:`.report` -- markdown tables, mean +- std over seeds, PNG charts;
* :mod:`.cpp_study` -- the CPP plug-in study (Tables 1-2, Figure 5) on top of the two;
* :mod:`.export` -- Cityscapes benchmark export and the demo's evaluation of the exported files;
* :mod:`.benchmark` -- size and speed measurements of SeeThroughNet;
* :mod:`.plot_cpp_targets` -- the CPP-target figure; :mod:`.class_image_counts` -- class counts.

Submodules are imported on demand (no torch import here).
"""
