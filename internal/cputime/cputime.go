// Package cputime reads the CPU time (user + system) spent by this process or by the
// calling OS thread, for the load tester's CPU figures and the benchmarks' cost per packet.
package cputime
