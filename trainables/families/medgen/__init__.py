"""MedGen's two families, diffusion and compression (seed document 001), and what they share."""
