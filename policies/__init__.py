"""Networks and agents (torch): MLPs and critic ensembles (networks), image encoders (encoders),
the SAC/RLPD agent with its grasp critic and the actor's inference-only `Policy` (sac), the reward
classifier (classifier, classifier_config). Imports only the shared contracts (hilrl.transport)."""
