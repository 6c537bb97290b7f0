"""Velocity vs Redis on one machine: the library behind bench/compare.py.

Layout, one concept per module:
    scenarios  which servers are measured, in which mode, against which baseline
    tools      finding or installing what a run needs (redis, Go, vbench, py-spy)
    procstat   CPU time and load from /proc
    certs      throwaway TLS material for redis-server
    servers    starting, inspecting (INFO) and stopping one server process
    clients    driving a server with vbench or redis-benchmark, parsing their output
    measure    one measured cell: a client run bracketed by /proc readings
    profiling  py-spy sampling of the engine and collapsed-stack summaries
    report     targets, the markdown table and docs/benchmarks.md
    machine    describing the machine and the git revision
    main       the command line
"""
