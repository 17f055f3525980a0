"""fnnet.train: the compiled training loop.

    fit.py       fit(), History, DivergedError (public as fnnet.fit & co.)
    loop.py      the jitted chunk of epochs (lax.while_loop over epochs, lax.scan over steps)
    progress.py  progress reporting between chunks
    metrics.py   accuracy and the per-epoch validation metrics
"""
