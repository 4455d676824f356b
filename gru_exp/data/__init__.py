"""Data: sources (imdb), tokenizers, the parsed token arrays and their cache, splits and batches."""
