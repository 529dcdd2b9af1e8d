package checkpoint

import (
	"testing"

	"github.com/logagent/logagent/internal/testenv"
)

// Tests here lower the process's file size limit (testenv.WithFileSizeLimit).
func TestMain(m *testing.M) { testenv.MainWithoutTestLog(m) }
