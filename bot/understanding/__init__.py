"""Understanding what a member means: the message analysed once, features, the learned topic model, and the
decision to answer, ask back or decline. Training (scikit-learn) is a build step in ``train``; everything
else runs on numpy alone."""
