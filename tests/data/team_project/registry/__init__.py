"""The team's own ``registry`` package (say, of its data sources): unrelated to the model registry."""

TEAM_ACTOR = "team-nightly-bot"
