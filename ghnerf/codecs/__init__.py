"""Target codecs shared by teachers, training and evaluation (one encode, one decode)."""
