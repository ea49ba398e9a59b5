"""Event sources and sinks: the seeded simulator, the Kafka and Event Hubs producers and the
consumers that write landing files."""
