"""What runs on the device: bench (latency, memory, sizes, accuracy), bundles, the gate, CI outputs and
reports. Imports core and runtimes only: never torch, never the pipeline."""
