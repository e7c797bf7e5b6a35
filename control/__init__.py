"""splitbrain: reaching nodes (remotes, files, processes, clusters, images, the clock patch, error types)."""
