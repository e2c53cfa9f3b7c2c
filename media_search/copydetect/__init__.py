"""Copy detection beside the embeddings: "this exact content, edited", whatever the weights.

* ``copydetect.image``: a 64-bit perceptual hash stored with image and keyframe
  rows, and local-feature (SIFT + RANSAC) verification of the top candidates
  at query time; mirror invariance through the mirrored query.
* ``copydetect.audio``: a landmark fingerprint (spectral peak pairs) stored
  with the audio rows, matched by hash lookup and offset voting, with tempo
  hypotheses.

Both give a ``copy`` verdict and a 0..1 ``confidence`` calibrated on
``scripts/bench_copy.py``; neither reads an embedding score.
"""
