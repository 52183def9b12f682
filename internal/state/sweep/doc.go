// Package sweep runs a periodic clean-up (dropping idle keys from an in-memory
// store) on a goroutine with an owner: whoever calls [Start] (a shardmap.Map's
// StartSweeper) keeps the returned [*Sweeper] and calls
// [Sweeper.Stop] from its Close, which waits until the goroutine has returned.
// One copy of that loop, so every store stops its sweeper the same way.
package sweep
