// gzcheck reads a .tar.gz with Go's standard library (compress/gzip, archive/tar), one
// more independent reader of what Amber writes. It requires a single gzip member
// (multistream off) and prints the member count and bytes.
package main

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

func main() {
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	// Our own buffered reader, so what follows the member is still ours to see.
	br := bufio.NewReader(f)
	zr, err := gzip.NewReader(br)
	if err != nil {
		fmt.Println("gzip header:", err)
		os.Exit(1)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	entries, bytes := 0, int64(0)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("tar:", err)
			os.Exit(1)
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil || n != h.Size {
			fmt.Println("entry", h.Name, ":", err)
			os.Exit(1)
		}
		entries++
		bytes += n
	}
	// Whatever follows the tar end must still be inside this one gzip member.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		fmt.Println("gzip trailer:", err)
		os.Exit(1)
	}
	rest, _ := io.Copy(io.Discard, br)
	if rest != 0 {
		fmt.Println("data after the first gzip member:", rest, "bytes")
		os.Exit(1)
	}
	fmt.Printf("ok - Go reads one gzip member: %d entries, %d bytes\n", entries, bytes)
}
