package credentials

import (
	"errors"
	"fmt"
)

// Error codes. Each adapter maps them to its transport in one table.
const (
	EInvalid         = "invalid"
	EUnauthenticated = "unauthenticated"
	EForbidden       = "forbidden"
	ERateLimited     = "rate_limited"
	ENotFound        = "not_found"
	EConflict        = "conflict"
	EPrecondition    = "precondition_failed"
	EUnavailable     = "unavailable"
	EInternal        = "internal"
)

// Error is a credentials error. Message is safe to return to callers;
// Field names the offending input field for invalid errors; Err is the
// cause and is only logged.
type Error struct {
	Code    string
	Message string
	Field   string
	Err     error
}

func (e *Error) Error() string {
	s := e.Code + ": " + e.Message
	if e.Field != "" {
		s += " (field " + e.Field + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with code and a formatted, caller-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an invalid error naming field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Message: fmt.Sprintf(format, args...), Field: field}
}

// Internal wraps err as an internal error whose message reveals nothing.
func Internal(err error) *Error {
	return &Error{Code: EInternal, Message: "internal error", Err: err}
}

// ErrorCode returns the code of err: the Code of a wrapped *Error,
// "" for nil and EInternal for anything else.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of err.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorField returns the field named by err, if any.
func ErrorField(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Field
	}
	return ""
}
