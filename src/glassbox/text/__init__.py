"""Text in, ids out: fetch and decode a corpus, its character vocabulary, and token batches from the prepared files."""
