"""Training: turning a settled config into trained weights, within the time the user has.

What it owns: the optimizer and its schedule (`optimization`), CPU fusion measured per machine
(`tuning`), the time budget's probe, plan and deadline (`budget`), backups and the run-folder
lock (`backup`), `model.fit` with its callbacks (`fit`), the small-data regime's contrastive
pairs and logistic head before it (`contrastive`), self-training on unlabelled texts after it
(`self_training`), and what is chosen on the validation split after fit: the temperature
(`calibration`) and the decision thresholds (`decision`). It may import the setup modules and
`app.model`; it is handed its data (`app.train` reads it).
"""
