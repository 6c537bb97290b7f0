// Command velocity-pause is the sandbox ("pause") container of the local test
// cluster: PID 1 of every pod, holding its namespaces. It does nothing until
// SIGTERM or SIGINT, which end it with status 0, and it reaps zombies, as PID 1
// of a pod with a shared process namespace must. Built statically (CGO_ENABLED=0)
// so the image needs no other file.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
