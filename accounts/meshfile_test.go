package accounts_test

import (
	"github.com/natsmesh/natsmesh/accounts"
	"github.com/natsmesh/natsmesh/policies"
)

func init() {
	accounts.ParseMeshFile = func(path string) (accounts.Spec, error) {
		f, err := policies.ParseFile(path)
		if err != nil {
			return accounts.Spec{}, err
		}
		return f.AccountsSpec(), nil
	}
}
