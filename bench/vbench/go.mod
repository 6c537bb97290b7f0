module velocity/bench/vbench

go 1.26
