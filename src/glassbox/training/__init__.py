"""The training loop and what it schedules: learning rate, snapshot steps, device and precision."""
