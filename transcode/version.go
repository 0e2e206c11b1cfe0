package transcode

/*
#cgo pkg-config: libavcodec libavformat libavutil libswscale
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libswscale/swscale.h>
*/
import "C"

import "fmt"

func libVersion(v C.uint) string { return fmt.Sprintf("%d.%d.%d", v>>16, (v>>8)&0xff, v&0xff) }

// FFmpegVersion names the FFmpeg this binary runs (the libraries it
// loaded, not those it was built against): what a derived copy's
// provenance record says made it.
func FFmpegVersion() string {
	return fmt.Sprintf("FFmpeg %s (libavcodec %s, libavformat %s, libavutil %s, libswscale %s)", C.GoString(C.av_version_info()),
		libVersion(C.avcodec_version()), libVersion(C.avformat_version()), libVersion(C.avutil_version()), libVersion(C.swscale_version()))
}
