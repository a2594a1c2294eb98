"""Failure alerts: a message to a Slack-compatible webhook per failed run or failed check."""
