package upload

import (
	"context"
	"errors"
	"net/http"

	tus "github.com/tus/tusd/v2/pkg/handler"
)

// What upload_test reaches inside the package.

// SetTestHookLook sets a function Run's sweep calls just before it takes
// an upload's finish lock (nil: none).
func SetTestHookLook(f func(id string)) { testHookLook = f }

// Pass is one sweep of Run over the spool.
func (s *Server) Pass(ctx context.Context) { s.pass(ctx) }

// FinishRequest finishes upload id as the PATCH that brought its last
// byte does (tusd's PreFinishResponseCallback), and returns its answer.
func (s *Server) FinishRequest(ctx context.Context, id string) (int, string, error) {
	resp, err := s.preFinish(tus.HookEvent{Context: ctx, Upload: tus.FileInfo{ID: id},
		HTTPRequest: tus.HTTPRequest{Method: http.MethodPatch}})
	if err != nil {
		var te tus.Error
		if errors.As(err, &te) {
			return te.HTTPResponse.StatusCode, te.HTTPResponse.Body, nil
		}
		return 0, "", err
	}
	return resp.StatusCode, resp.Body, nil
}
