import pytest
from bank_account import Account


def test_flow():
    account = Account()
    account.open()
    account.deposit(100)
    account.withdraw(30)
    assert account.balance() == 70


def test_errors():
    account = Account()
    with pytest.raises(ValueError):
        account.deposit(5)
    account.open()
    with pytest.raises(ValueError):
        account.open()
    with pytest.raises(ValueError):
        account.deposit(0)
    with pytest.raises(ValueError):
        account.withdraw(1)


def test_reopen_starts_empty():
    account = Account()
    account.open()
    account.deposit(10)
    account.close()
    with pytest.raises(ValueError):
        account.balance()
    account.open()
    assert account.balance() == 0
