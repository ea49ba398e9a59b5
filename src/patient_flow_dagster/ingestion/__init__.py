"""Event sources: the seeded patient-flow simulator and the landing-file writer."""
