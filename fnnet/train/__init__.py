"""fnnet.train: the compiled training loop.

    fit.py       fit(), History, DivergedError (public as fnnet.fit & co.)
    loop.py      the jitted chunk of epochs (lax.while_loop over epochs, lax.scan over steps)
    progress.py  progress reporting between chunks
    metrics.py   accuracy and the per-epoch validation metrics
    sharding.py  fit(mesh=): each step's batch split over a device mesh, one psum of the grads
"""
