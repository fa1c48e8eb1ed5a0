package fs

// WaitPrepared waits for the files of Prepare calls under way.
func (b *Bucket) WaitPrepared() { b.preparing.Wait() }
