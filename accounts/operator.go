package accounts

import "errors"

func generateOperator(spec *Spec, users []User, dir string, o *options) error {
	return errors.New("accounts: operator mode: not yet")
}
