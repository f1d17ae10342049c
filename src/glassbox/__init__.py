"""glassbox: a character-level GPT you can see straight through, and the data of how meaning emerges in it."""
