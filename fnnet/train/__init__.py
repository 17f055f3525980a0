"""fnnet.train: the compiled training loop.

    fit.py       fit() (public as fnnet.fit); resuming via opt_state/initial_epoch
    result.py    FitResult(params, history, opt_state, state, epoch) and History: what fit returns
    interrupt.py Ctrl-C during fit: stop at a chunk boundary, TrainingInterrupted carries the last epoch
    divergence.py DivergedError and the choice of the last params with a finite loss
    loop.py      the jitted chunk of epochs (lax.while_loop over epochs, lax.scan over steps)
    progress.py  progress reporting between chunks (tqdm on a terminal, plain lines elsewhere)
    metrics.py   accuracy and the per-epoch validation metrics
    sharding.py  fit(mesh=): each step's batch split over a device mesh, one psum of the grads
"""
