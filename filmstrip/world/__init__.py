"""World models: game play recorded as episodes, and (to come) action-conditioned video
models trained on them, played live and served as Gymnasium environments."""
