module github.com/bodycam/bodycam

go 1.26.8
