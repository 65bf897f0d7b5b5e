package preprocess_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/ofaserve/ofaserve/preprocess"
)

// Prepare takes an encoded image file as a client sent it and returns the
// model's CHW float32 tensor: here a 4×2 red PNG becomes OFA's normalized
// 2×2 input (mean = std = 0.5 maps 0..255 to -1..1), red 1 and green and
// blue -1 at every pixel.
func ExamplePrepare() {
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for y := range 2 {
		for x := range 4 {
			img.Set(x, y, color.RGBA{R: 255, A: 255})
		}
	}
	var file bytes.Buffer
	if err := png.Encode(&file, img); err != nil {
		fmt.Println(err)
		return
	}
	opts := preprocess.Options{Width: 2, Height: 2, Norm: preprocess.OFANormalize}
	t, err := preprocess.Prepare(file.Bytes(), opts, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(t), "floats")
	fmt.Println("R", t[0:4])
	fmt.Println("G", t[4:8])
	fmt.Println("B", t[8:12])
	// Output:
	// 12 floats
	// R [1 1 1 1]
	// G [-1 -1 -1 -1]
	// B [-1 -1 -1 -1]
}
