"""Training: data from the cache, losses, metrics, one trainer, and the two workflow stages
(pretraining on the source, fine-tuning on the target). Needs torch and numpy only."""
