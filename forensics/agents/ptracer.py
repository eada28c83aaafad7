"""Yama ``ptrace_scope=1`` support, for the supervisor's side: the agent itself declares the
supervisor as its tracer at start-up (``_forensics_agent.allow_supervisor``); these are the same
functions, from the one copy of the agent."""

from __future__ import annotations

from forensics.agents.bootstrap import agent

_agent = agent()

ENV_SUPERVISOR_PID: str = _agent.ENV_SUPERVISOR_PID
yama_scope = _agent.yama_scope
allow_supervisor = _agent.allow_supervisor

__all__ = ["ENV_SUPERVISOR_PID", "allow_supervisor", "yama_scope"]
