"""The world model as a Gymnasium environment: agents, people (play.py) and tests drive it
through the same `reset` / `step` as the real game.

    env = WorldModelEnv()                       # the bundled Pong model
    obs, info = env.reset(seed=0)               # a real recorded start
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Observations are uint8 (H, W, 3) frames, as the recorder wrote them; rewards and episode ends
come from the model's heads. A reset starts from one of the real context windows shipped
with the weights, picked by the environment's random generator, and the sampler's noise is
seeded from it too: the same seed and actions give the same frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from filmstrip.errors import InputError
from filmstrip.io.layout import from_uint8, to_uint8
from filmstrip.world.model import WorldModel, load_world_model
from filmstrip.world.rollout import Rollout, SampleConfig, flow_predictor

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError:  # pragma: no cover - the world extra is part of `make test`
    raise InputError("the world-model environment needs the world extra: pip install -e '.[world]'") from None


class WorldModelEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self,
        model: WorldModel | str | Path | None = None,
        sample: SampleConfig | None = None,
        max_steps: int = 1000,
        render_mode: str | None = "rgb_array",
        device: torch.device | str = "cpu",
    ):
        """model: a WorldModel (used where it is), or a folder or bundled name loaded on `device`."""
        self.model = model if isinstance(model, WorldModel) else load_world_model(model, device)
        self.model.eval()
        cfg = self.model.cfg
        self.sample, self.max_steps, self.render_mode = sample or SampleConfig(), max_steps, render_mode
        self.observation_space = spaces.Box(0, 255, (cfg.size, cfg.size, 3), np.uint8)
        self.action_space = spaces.Discrete(cfg.num_actions)
        self.metadata = {**self.metadata, "render_fps": cfg.fps}
        self._rollout: Rollout | None = None
        self._obs = np.zeros((cfg.size, cfg.size, 3), np.uint8)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        m = self.model
        start = int(self.np_random.integers(len(m.start_frames)))
        frames = from_uint8(m.start_frames[start : start + 1]).movedim(-1, -3)  # (1, N, 3, H, W)
        predict = flow_predictor(m, self.sample, seed=int(self.np_random.integers(2**31)))
        self._rollout = Rollout(predict, frames, m.start_actions[start : start + 1], heads=m.heads)
        self._obs = m.start_frames[start, -1].cpu().numpy().copy()
        self._steps = 0
        return self._obs.copy(), {"start": start}

    def step(self, action):
        if self._rollout is None:
            raise InputError("call reset() before step()")
        if not self.action_space.contains(action):
            raise InputError(f"action must be an integer in 0..{self.action_space.n - 1}, got {action!r}")
        frame, reward, end = self._rollout.step(torch.tensor([int(action)]))
        self._obs = to_uint8(frame[0]).permute(1, 2, 0).cpu().numpy()
        self._steps += 1
        return self._obs.copy(), float(reward[0]), bool(end[0]), self._steps >= self.max_steps, {}

    def render(self) -> np.ndarray:
        return self._obs.copy()
