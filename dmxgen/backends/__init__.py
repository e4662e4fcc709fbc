"""Backends print the integer Graph as code: `c` (templates/c) for microcontrollers, `hls`
(templates/hls) for FPGAs; `host` builds and checks an exported C folder on this machine."""
