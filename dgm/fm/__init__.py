"""Foundation models: prices now; providers behind one protocol come with the seed agent."""
