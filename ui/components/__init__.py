"""Console building blocks: each takes DTOs, renders them, and returns what the user asked for (an intent)."""
