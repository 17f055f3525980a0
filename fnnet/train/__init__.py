"""fnnet.train: the compiled training loop.

    fit.py       fit(), History (public as fnnet.fit & co.); resuming via opt_state/initial_epoch
    divergence.py DivergedError and the choice of the last params with a finite loss
    loop.py      the jitted chunk of epochs (lax.while_loop over epochs, lax.scan over steps)
    progress.py  progress reporting between chunks (tqdm on a terminal, plain lines elsewhere)
    metrics.py   accuracy and the per-epoch validation metrics
"""
