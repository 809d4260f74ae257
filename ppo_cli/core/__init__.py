"""What every kind of run shares: the one loop, PPO math, the session and the run folder."""
