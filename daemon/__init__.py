"""The vision-evald process: config, composition root, queue, workers, watcher, promotion."""
