// Command wsgateprof runs the wsgate server, as `wsgate serve -c FILE` would,
// with a CPU (and optionally heap) profile written by runtime/pprof. It exists
// for benchmarks only: the real binary carries no profiling endpoint.
//
//	go run ./bench/wsgateprof -config bench/wsgate-bench.yaml -cpuprofile /tmp/cpu.out &
//	wsgate bench ws://127.0.0.1:9102/ws --secret … --kid bench -d 10s
//	kill -INT %1 && go tool pprof -top /tmp/cpu.out
//
// With -memprofile FILE, SIGUSR1 writes the live heap to FILE while
// connections are open (e.g. during `wsgate bench --mode idle`) and prints
// the goroutine count, heap and stack bytes in use to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "wsgateprof:", err)
		os.Exit(1)
	}
}

func run() error {
	file := flag.String("config", "bench/wsgate-bench.yaml", "wsgate configuration file")
	cpu := flag.String("cpuprofile", "", "write a CPU profile here")
	heap := flag.String("memprofile", "", "on SIGUSR1, write the live heap profile here")
	limit := flag.Duration("max", 10*time.Minute, "stop by itself after this long")
	flag.Parse()

	cfg, err := config.Load(*file, os.Environ())
	if err != nil {
		return err
	}
	srv, err := wsgate.New(cfg)
	if err != nil {
		return err
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *limit)
	defer cancel()
	if *heap != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		go func() { // ends with ctx
			for {
				select {
				case <-usr1:
					if err := writeHeap(*heap); err != nil {
						fmt.Fprintln(os.Stderr, "wsgateprof:", err)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	return srv.ListenAndServe(ctx, func(l wsgate.Listening) {
		fmt.Printf("wsgateprof listening on %s pid %d\n", l.Addr, os.Getpid())
	})
}

func printMem(when string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "wsgateprof: %s: goroutines %d heap_alloc %d heap_inuse %d heap_idle %d heap_released %d next_gc %d stack_inuse %d mspan %d gc_sys %d other_sys %d sys %d\n",
		when, runtime.NumGoroutine(), ms.HeapAlloc, ms.HeapInuse, ms.HeapIdle, ms.HeapReleased, ms.NextGC, ms.StackInuse, ms.MSpanInuse, ms.GCSys, ms.OtherSys, ms.Sys)
}

func writeHeap(path string) error {
	// The heap profile leaves out goroutine stacks and the runtime's own
	// memory: print where the process's memory is, for per-connection sums,
	// as it was (the heap between collections, its goal) and after a GC.
	printMem("before GC")
	runtime.GC()
	printMem("after GC")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}
